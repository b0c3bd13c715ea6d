import pytest

from policyclf.errors import LabelError
from policyclf.labels import CATEGORIES, CODEBOOK, SUBCODE_TO_CATEGORY, SUBCODES, label_index


def test_seven_categories_in_codebook_order():
    assert CATEGORIES == ("institutional_system", "government_functions", "social_organizations",
                          "service_mechanisms", "investment_channels", "talent_teams", "cooperation_platforms")
    assert [c.number for c in CODEBOOK] == list(range(1, 8))


def test_subcodes_belong_to_one_category():
    assert len(SUBCODES) == 26 == len(set(SUBCODES))
    assert SUBCODE_TO_CATEGORY["ip_management"] == "service_mechanisms"
    assert SUBCODE_TO_CATEGORY["joint_rd_institutions"] == "cooperation_platforms"


def test_label_index_rejects_unknown():
    import pytest

    assert label_index("talent_teams") == 5
    with pytest.raises(LabelError, match="expected one of"):
        label_index("talent")


def test_label_matrix_round_trip_and_one_error_type():
    from policyclf.labels import labels_to_matrix, matrix_to_labels

    y = labels_to_matrix([["talent_teams", "institutional_system"], []])
    assert y.shape == (2, 7) and y[0, 0] == 1 and y[0, 5] == 1 and y[1].sum() == 0
    assert matrix_to_labels(y) == [["institutional_system", "talent_teams"], []]
    with pytest.raises(LabelError, match="unknown label 'talent'"):
        labels_to_matrix([["talent"]])

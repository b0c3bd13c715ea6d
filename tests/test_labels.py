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
    with pytest.raises(KeyError, match="expected one of"):
        label_index("talent")

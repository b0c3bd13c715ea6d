"""The seven categories of the codebook and their sub-codes, in codebook order.

Everything else in policyclf imports the label set from here; the order of
``CATEGORIES`` is the column order of every score matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from policyclf.errors import LabelError


@dataclass(frozen=True)
class Category:
    """One codebook category with its sub-codes."""

    id: str
    number: int
    name_zh: str
    name_en: str
    subcodes: tuple[tuple[str, str], ...]  # (sub-code id, Chinese name)


CODEBOOK: tuple[Category, ...] = (
    Category("institutional_system", 1, "建立健全制度体系", "sound institutional system",
             (("strategy_planning", "基本制度"), ("normative_rules", "规范制度"))),
    Category("government_functions", 2, "完善政府职能", "government functions",
             (("leadership_duties", "领导与部门职责"), ("coordination_mechanism", "协调机制"),
              ("targets_assessment", "目标与考核"), ("monitoring_statistics", "统计监测与评估"))),
    Category("social_organizations", 3, "建立协同创新对接社会组织", "bridging organizations",
             (("cooperation_bodies", "产学研合作专门机构"), ("associations_alliances", "协会/促进会/联盟"),
              ("intermediary_services", "科技中介服务机构"))),
    Category("service_mechanisms", 4, "完善协同创新对接服务体制机制", "mechanisms of the docking service",
             (("consultation_service", "咨询服务机制"), ("risk_sharing", "风险分担"),
              ("personnel_system", "人事制度"), ("incentive_mechanism", "激励机制"),
              ("evaluation_mechanism", "评价机制"), ("ip_management", "知识产权管理"))),
    Category("investment_channels", 5, "鼓励多元化投入渠道", "diversified investment channels",
             (("government_funding", "政府投入"), ("financing_environment", "投融资环境"),
              ("diversified_input", "多元投入机制"))),
    Category("talent_teams", 6, "支持协同创新人才队伍建设", "collaborative-innovation talent teams",
             (("talent_introduction", "人才引进"), ("team_building", "团队建设"),
              ("talent_exchange", "人才交流"), ("training_mode", "培养模式"))),
    Category("cooperation_platforms", 7, "搭建合作创新平台", "platforms for cooperation and innovation",
             (("resource_sharing", "资源共享"), ("information_base", "信息资源库"),
              ("service_platform", "公共服务与交易平台"), ("joint_rd_institutions", "共建研发机构"))),
)

CATEGORIES: tuple[str, ...] = tuple(c.id for c in CODEBOOK)
SUBCODE_TO_CATEGORY: dict[str, str] = {s: c.id for c in CODEBOOK for s, _ in c.subcodes}
SUBCODES: tuple[str, ...] = tuple(SUBCODE_TO_CATEGORY)


def _unknown(label: object, categories: Sequence[str]) -> LabelError:
    return LabelError(f"unknown label {label!r}; expected one of {', '.join(categories)} (see the shared CODEBOOK.md)")


def label_index(label: str) -> int:
    """Column of ``label`` in score matrices.

    Raises:
        LabelError: for an id that is not one of the seven categories.
    """
    try:
        return CATEGORIES.index(label)
    except ValueError:
        raise _unknown(label, CATEGORIES) from None


def labels_to_matrix(labels: Sequence[Sequence[str]], categories: Sequence[str] = CATEGORIES) -> np.ndarray:
    """Binary (n, k) matrix from lists of category ids.

    Raises:
        LabelError: for a label outside ``categories``.
    """
    index = {c: i for i, c in enumerate(categories)}
    y = np.zeros((len(labels), len(categories)), dtype=np.int8)
    for row, labs in enumerate(labels):
        for lab in labs:
            if lab not in index:
                raise _unknown(lab, categories)
            y[row, index[lab]] = 1
    return y


def matrix_to_labels(y: np.ndarray, categories: Sequence[str] = CATEGORIES) -> list[list[str]]:
    """Lists of category ids from a binary (n, k) matrix."""
    return [[categories[j] for j in np.flatnonzero(row)] for row in y]

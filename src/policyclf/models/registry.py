"""The one list of backends: name → the class that implements it (imported only when used).

A new backend is one module with a :class:`~policyclf.models.base.BaseClassifier` subclass
(``from_config``, ``fit``, ``predict_proba``, weights I/O) plus one line here.
"""

from __future__ import annotations

from importlib import import_module

from policyclf.errors import ModelError

BACKENDS: dict[str, str] = {
    "tfidf": "policyclf.models.tfidf:TfidfClassifier",
    "bert": "policyclf.models.bert:BertClassifier",
    "distilled": "policyclf.models.distilled:DistilledClassifier",
    "ensemble": "policyclf.models.ensemble:EnsembleClassifier",
}


def check_backend(name: str) -> str:
    """``name`` if it is a registered backend.

    Raises:
        ModelError: naming the registered backends.
    """
    if name not in BACKENDS:
        raise ModelError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    return name


def backend_class(name: str) -> type:
    """The classifier class of backend ``name`` (its module is imported now)."""
    module, cls = BACKENDS[check_backend(name)].split(":")
    return getattr(import_module(module), cls)

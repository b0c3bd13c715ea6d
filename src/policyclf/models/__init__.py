"""Classifier backends: ``tfidf`` (scikit-learn) and ``bert`` (transformers), one protocol."""

from policyclf.models.base import BaseClassifier, load_model

__all__ = ["BaseClassifier", "load_model"]

"""Russian text front end shared by every TTS engine."""

from vestnik.text.normalize import has_speakable, normalize, split_sentences

__all__ = ["has_speakable", "normalize", "split_sentences"]

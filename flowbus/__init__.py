"""flowbus: a Kafka-native workflow engine."""

__version__ = "0.1.0"

"""Each event kind imptrack carries on Kafka, declared once."""

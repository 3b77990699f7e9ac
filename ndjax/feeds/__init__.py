"""Daily bars for the live loop: feeds (Alpaca market data, a CSV folder), which bars are final, and bringing a
folder of per-symbol CSVs up to date (atomic writes, corrections, refused bad bars)."""

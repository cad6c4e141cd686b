"""Benchmarks and the seed notebook's reference pipeline they compare against."""

"""Perceptual-hash dedupe: hashing candidates, exact Hamming-radius search at scale, near-dup reports."""

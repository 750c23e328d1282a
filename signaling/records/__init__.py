"""The records: the signed, hash-chained service log, its checkpoints, statistics and
the compensation export, receipts, the clerk's desk entries and feedback.
"""

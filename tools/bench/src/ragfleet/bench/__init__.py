"""ragfleet.bench: benchmark records, calibration and like-for-like comparison, and where records are kept.

``history`` (records, the comparison rule), ``calibration`` (machine fingerprint, reference
workloads), ``echo`` (the reference HTTP app), ``stores`` (a directory of files; one ConfigMap).
"""

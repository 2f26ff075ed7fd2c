"""The ground floor: small pieces every room of crossmath shares, importing none of them.

Content hashes (``fingerprints``), the shape of the work a task hands the dataflow and each
request's id (``requests``), a data set as a run names it (``dataset_ref``), and the one type of
a user's error (``errors``).
"""

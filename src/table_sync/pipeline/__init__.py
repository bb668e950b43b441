"""The middle of a run: scan a segment page by page, decode each page, commit it.

* :mod:`.decode`: a page's items decrypted concurrently and sorted into copies and quarantine
  records (or the run's failure);
* :mod:`.commit`: a decoded page written, its quarantine recorded, the checkpoint saved with
  the lease renewed;
* :mod:`.budgets`: how fast the scan may read, and when the invocation's time is up;
* :mod:`.segment`: the loop that ties them together.
"""

"""Everything computed from a store and nothing else: the rows of variants (``rows``), the
figures and intervals built on them (``figures``, ``stats``), the paper's claims (``paper``, the
one module that names built-in components), the markdown page (``leaderboard``, ``tables``),
its PNG figures (``plots``) and ``harness export`` (``export``)."""

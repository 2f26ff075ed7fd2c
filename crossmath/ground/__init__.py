"""The ground floor: the few pieces every layer may import (and that import nothing of
crossmath): the one type of a user's error (``errors``)."""

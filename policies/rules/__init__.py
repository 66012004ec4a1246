"""One module per rule kind. Each rule reads its signal at a tick and says whether its
condition holds (True/False) or that it has no value (None); `Streak` adds `for`."""

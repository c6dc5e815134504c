"""Risk a person can act on, from a forecast's predictive distribution: `distribution.py` reads a
step's quantiles as a whole distribution, `paths.py` draws price paths consistent with every
step's, `events.py` answers the probabilities a trader asks (above a level, touching it, a target
before a stop)."""

"""Energy on a neuromorphic chip model: SANA-FE's Loihi architecture (its own simulation of an SNN,
and the analytical estimate from this project's spike counts)."""

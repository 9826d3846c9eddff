"""Running the dataflow: :mod:`.replay` (recordings), :mod:`.live` (venue feeds, recorder),
:mod:`.cluster` (workers, processes, recovery)."""

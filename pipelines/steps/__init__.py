"""The dataflow's steps, in the order :mod:`cascadewatch.pipelines.flow` wires them.

- :mod:`.tracked_source`: wraps a source so each venue instrument's state
  (:mod:`.instrument_tracker`: book, trades, liquidations, mark, open interest) runs in the
  partition that reads it; emits one :class:`.items.InstrumentState` per closed second and
  a watermark per batch;
- :mod:`.second_release` (with :mod:`.watermarks`): the merge key releases each event-time
  second once every partition has passed it, as one :class:`.items.AssetSecond` per asset
  plus a :class:`.items.SecondManifest`;
- :mod:`.asset_risk`: one key per asset: venue merge (:mod:`.asset_aggregator`), detectors
  (:mod:`.asset_detectors`), alert policies (cascade, and :mod:`.feed_policy`);
- :mod:`.output_ordering`: one key releases every asset's outputs in ``(ts, asset)`` order;
- :mod:`.contagion`: on the same key, every asset's second together: the grouped alert when
  cascades begin in several assets (:mod:`cascadewatch.detectors.contagion`);
- :mod:`.summary`: the replay summary sink (frames and dead letters counted).

:mod:`.items` holds the values that travel between these steps.
"""

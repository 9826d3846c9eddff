"""Everything that touches the outside world: the event model (:mod:`.events`) and the output
contract (:mod:`.outputs`), venue parsers and book rules (:mod:`.venues`), recordings, sources
and sinks, websocket sessions, alert delivery (:mod:`.alerts`) and the risk feed."""

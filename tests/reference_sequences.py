"""An independent reference of the point-in-time sequences in DuckDB SQL (window + list aggregation).

It shares no code with hemix_tf.data.sequences: the day start, the strict "before", the ordering, the
truncation and the time gaps are all written again here in SQL.
"""
import duckdb
import pyarrow as pa

from hemix_tf.data.examples import SEQUENCES, TIME_GAP, sequence_feature, sequence_fields


def reference_tables(impressions: pa.Table, events: pa.Table, config, partitions: int = 1):
  """Arrow tables (request_id, seq, one list column per field), one per user partition
  (user_id % partitions): partitions bound the memory of the join on large logs."""
  off = config.day_offset_seconds
  fields = [f for f in sequence_fields(config) if f != TIME_GAP]
  side = ", ".join(f"e.{f}" for f in fields if f not in ("item_id", "behavior"))
  side = (side + ",") if side else ""
  lists = ", ".join(f"list({f} ORDER BY rn) AS {f}" for f in fields)
  con = duckdb.connect()
  con.register("impressions", impressions.select(["request_id", "user_id", "timestamp"]))
  con.register("events", events)
  for part in range(partitions):
    yield con.execute(f"""
    WITH imp AS (
      SELECT request_id, user_id, timestamp AS t,
             ((timestamp + {off}) // 86400) * 86400 - ({off}) AS day_start
      FROM impressions WHERE user_id % {partitions} = {part}),
    joined AS (
      SELECT i.request_id, i.t, e.item_id, e.behavior, {side} e.timestamp,
             CASE WHEN e.timestamp < i.day_start THEN 'global' ELSE 'realtime' END AS seq
      FROM imp i JOIN events e ON e.user_id = i.user_id AND e.timestamp < i.t
                              AND e.user_id % {partitions} = {part}),
    ranked AS (
      SELECT *, row_number() OVER (PARTITION BY request_id, seq
                                   ORDER BY timestamp DESC, item_id DESC, behavior DESC) AS rn
      FROM joined)
    SELECT request_id, seq, {lists}, list(t - timestamp ORDER BY rn) AS {TIME_GAP}
    FROM ranked
    WHERE (seq = 'global' AND rn <= {config.sequence.global_length})
       OR (seq = 'realtime' AND rn <= {config.sequence.realtime_length})
    GROUP BY request_id, seq
    """).fetch_arrow_table()


def reference_sequences(impressions: pa.Table, events: pa.Table, config) -> dict:
  """{request_id: {sequence feature name: list}} for every impression (empty lists included)."""
  fields = [f for f in sequence_fields(config) if f != TIME_GAP]
  rows = [row for table in reference_tables(impressions, events, config)
          for row in zip(*table.to_pydict().values())]
  empty = {sequence_feature(s, f): [] for s in SEQUENCES for f in sequence_fields(config)}
  out = {rid: dict(empty) for rid in impressions["request_id"].to_pylist()}
  names = fields + [TIME_GAP]
  for request_id, seq, *values in rows:
    for name, value in zip(names, values):
      out[request_id][sequence_feature(seq, name)] = value
  return out

"""Fleet health and IOTDB maintenance: device status, alarms, statistics, history,
message cleaning and forecasts. Every aggregation runs in the database (GROUP BY);
every query is parameterised and runs on MySQL/MariaDB and SQLite alike."""

"""Writers to ClickHouse (server or embedded chDB) and InfluxDB, with schema migrations."""

-- Plume central metadata, schema 1 (the bbolt store's schema 2, in tables).
--
-- Identifiers use the "C" collation so that they sort byte-wise, as the
-- bbolt store's keys do: case IDs (C%011d) sort in creation order on any
-- server locale. Documents are kept as json (verbatim text) so that they
-- decode exactly as written; the columns beside them are what queries
-- filter and sort on. Times used for filtering and ordering are Unix
-- nanoseconds (bigint), as in the bbolt keys, so a filter on a
-- sub-microsecond boundary behaves the same on both stores.

CREATE TABLE stations (
	id  text COLLATE "C" PRIMARY KEY,
	doc json NOT NULL
);

CREATE TABLE evidence (
	station text COLLATE "C" NOT NULL,
	id      text COLLATE "C" NOT NULL,
	case_id text COLLATE "C" NOT NULL DEFAULT '',
	doc     json NOT NULL,
	PRIMARY KEY (station, id)
);

CREATE TABLE records (
	station text COLLATE "C" NOT NULL,
	id      text COLLATE "C" NOT NULL,
	doc     json NOT NULL,
	PRIMARY KEY (station, id)
);

-- Pass rows for statistics; seq is the paging cursor (newest first).
CREATE TABLE passes (
	seq     bigserial PRIMARY KEY,
	station text COLLATE "C" NOT NULL,
	outcome text NOT NULL,
	doc     json NOT NULL
);
CREATE INDEX passes_station ON passes (station, seq);
CREATE INDEX passes_outcome ON passes (outcome, seq);

CREATE SEQUENCE case_seq;

CREATE TABLE cases (
	id          text COLLATE "C" PRIMARY KEY,
	station     text COLLATE "C" NOT NULL,
	status      text NOT NULL,
	kind        text NOT NULL DEFAULT '',
	plate       text COLLATE "C" NOT NULL DEFAULT '',
	grade       integer NOT NULL DEFAULT 0,
	pollutants  text[] NOT NULL DEFAULT '{}',
	captured_ns bigint NOT NULL,
	package_sha text NOT NULL DEFAULT '',
	doc         json NOT NULL
);
-- The review queue (status, newest or oldest first), an officer's
-- stations, and the plate search.
CREATE INDEX cases_status ON cases (status, id);
CREATE INDEX cases_station ON cases (station, id);
CREATE INDEX cases_station_status ON cases (station, status, id);
CREATE INDEX cases_plate ON cases (plate, id);

-- Each line is the entry's canonical encoding (central.EncodeCustody),
-- which the next entry's prev_sha256 hashes.
CREATE TABLE custody (
	case_id text COLLATE "C" NOT NULL,
	seq     bigint NOT NULL,
	line    json NOT NULL,
	PRIMARY KEY (case_id, seq)
);

CREATE TABLE jobs (
	id            bigserial PRIMARY KEY,
	kind          text NOT NULL,
	case_id       text COLLATE "C" NOT NULL DEFAULT '',
	attempts      integer NOT NULL DEFAULT 0,
	created_ns    bigint NOT NULL DEFAULT 0,
	not_before_ns bigint NOT NULL DEFAULT 0, -- 0: no earliest time
	lease_ns      bigint NOT NULL DEFAULT 0, -- 0: not leased
	last_error    text NOT NULL DEFAULT ''
);

-- The vehicle file (一车一档): every pass of a plate, newest first.
CREATE TABLE vehicles (
	plate   text COLLATE "C" NOT NULL,
	time_ns bigint NOT NULL,
	pass_id text COLLATE "C" NOT NULL,
	case_id text COLLATE "C" NOT NULL DEFAULT '',
	doc     json NOT NULL,
	PRIMARY KEY (plate, time_ns, pass_id)
);

CREATE TABLE station_audits (
	station   text COLLATE "C" NOT NULL,
	time_ns   bigint NOT NULL,
	record_id text COLLATE "C" NOT NULL,
	doc       json NOT NULL,
	PRIMARY KEY (station, time_ns, record_id)
);

-- Dashboard day counters (central.DayStats) by local day and station.
CREATE TABLE daily (
	day     text COLLATE "C" NOT NULL,
	station text COLLATE "C" NOT NULL,
	doc     json NOT NULL,
	PRIMARY KEY (day, station)
);

CREATE TABLE officers (
	username text COLLATE "C" PRIMARY KEY,
	doc      json NOT NULL
);

CREATE TABLE sessions (
	hash       text COLLATE "C" PRIMARY KEY,
	expires_ns bigint NOT NULL,
	doc        json NOT NULL
);

-- The hash-chained audit log. Each line is the event's JSON, which the
-- next event's prev_sha256 hashes.
CREATE TABLE audit_log (
	seq     bigint PRIMARY KEY,
	time_ns bigint NOT NULL,
	actor   text COLLATE "C" NOT NULL,
	action  text COLLATE "C" NOT NULL,
	target  text COLLATE "C" NOT NULL DEFAULT '',
	line    json NOT NULL
);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_target ON audit_log (target, seq);

-- Counters that would be slow to count: spread over a few shards so that
-- concurrent transactions on several replicas rarely wait on one row.
CREATE TABLE counters (
	name  text NOT NULL,
	shard integer NOT NULL,
	n     bigint NOT NULL,
	PRIMARY KEY (name, shard)
);

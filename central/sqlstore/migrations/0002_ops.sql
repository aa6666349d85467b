-- Station operations (central.OpsStore): health with history, alerts and
-- each station's desired configuration.

CREATE TABLE ops_health (
	station text COLLATE "C" PRIMARY KEY,
	doc     json NOT NULL
);

CREATE TABLE ops_health_history (
	station     text COLLATE "C" NOT NULL,
	received_ns bigint NOT NULL,
	doc         json NOT NULL,
	PRIMARY KEY (station, received_ns)
);

CREATE TABLE ops_alerts (
	id  text COLLATE "C" PRIMARY KEY,
	doc json NOT NULL
);

-- doc is JSON null while the first version is being written.
CREATE TABLE ops_desired_config (
	station text COLLATE "C" PRIMARY KEY,
	doc     json NOT NULL
);

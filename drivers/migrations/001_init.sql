-- 001_init: placeholder, replaced by the foundation schema before first release.
CREATE TABLE IF NOT EXISTS pools (id bigserial PRIMARY KEY);

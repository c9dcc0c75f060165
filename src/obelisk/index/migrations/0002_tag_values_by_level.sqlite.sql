-- Obelisk index, version 2 (SQLite): tag values know the level of their resource, and the
-- search indexes cover the whole lookup (tag, level, value → resource), so that a search at one
-- level reads only that level's rows and never the table.
ALTER TABLE tag_values ADD COLUMN level INTEGER NOT NULL DEFAULT -1;
UPDATE tag_values SET level = (SELECT r.level FROM resources r WHERE r.id = tag_values.resource_id);
DROP INDEX tag_values_by_norm;
DROP INDEX tag_values_by_value;
CREATE INDEX tag_values_by_norm ON tag_values(tag, level, value_norm, resource_id);
CREATE INDEX tag_values_by_value ON tag_values(tag, level, value, resource_id);

-- Obelisk index, version 2 (PostgreSQL): tag values know the level of their resource, and the
-- search indexes cover the whole lookup (tag, level, value → resource), so that a search at one
-- level reads only that level's rows and, once vacuumed, never the table.
ALTER TABLE tag_values ADD COLUMN level INTEGER NOT NULL DEFAULT -1;
UPDATE tag_values t SET level = r.level FROM resources r WHERE r.id = t.resource_id;
ALTER TABLE tag_values ALTER COLUMN level DROP DEFAULT;
DROP INDEX tag_values_by_norm;
DROP INDEX tag_values_by_value;
CREATE INDEX tag_values_by_norm ON tag_values(tag, level, value_norm, resource_id);
CREATE INDEX tag_values_by_value ON tag_values(tag, level, value, resource_id);

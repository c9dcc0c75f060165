-- Obelisk index, version 3: the recycling order (oldest unprotected patient first) as an index
-- on the patients, so that finding the next patient to recycle reads one entry, not them all.
CREATE INDEX resources_recycling ON resources(protected, last_update_epoch, id) WHERE level = 0;

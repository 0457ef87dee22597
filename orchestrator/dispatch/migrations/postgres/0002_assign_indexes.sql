-- Set-based assignment reads, per person and skill group (route, language, medium), the best
-- queued items of the group: an index in exactly that order, over queued rows only. It also
-- serves the list of groups with queued work (and their oldest arrival) that assignment starts
-- from.
DROP INDEX IF EXISTS dispatch_items_queue;
DROP INDEX IF EXISTS dispatch_items_skill;
CREATE INDEX dispatch_items_group_queue
    ON dispatch_items (route, language, medium, class DESC, key DESC, seq)
    WHERE state = 'queued';

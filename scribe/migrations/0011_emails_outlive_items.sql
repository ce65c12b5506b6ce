-- An email outlives the queue item that made it, untouched.
--
-- `emails.queue_item_id` referenced queue_items with ON DELETE SET NULL, so retention pruning a
-- finished item rewrote its email: a new version of every kept email row (the table doubled in
-- size after pruning 20 000 items; on an SD card that is the space and the wear). The id stays
-- as a plain column: UNIQUE still allows at most one email per item (the completion transaction
-- inserts the email of an item it holds), and an id no item has any more only means that item
-- was pruned. Nothing joins emails to queue_items through it.
ALTER TABLE emails DROP CONSTRAINT emails_queue_item_id_fkey;

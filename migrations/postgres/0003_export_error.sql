-- Why an order export task failed (shown to its owner with status `failed`).
ALTER TABLE export_tasks ADD COLUMN error TEXT;

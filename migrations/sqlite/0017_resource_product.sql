-- Issue 25: the product a resource was bought as, kept on the resource
-- itself: a pay-per-use purchase creates no order, so no order line item
-- names its product.
ALTER TABLE resources ADD COLUMN product_id TEXT;

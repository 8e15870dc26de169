-- Issue 12: the policies alone decide who may switch into an account. A
-- session is bound to the customer's live authorization when there is one;
-- a session made without one (only a policy set that allows it can make
-- one) has none, and the R12 guardrail denies it everything.
ALTER TABLE partner_sessions ALTER COLUMN authorization_id DROP NOT NULL;

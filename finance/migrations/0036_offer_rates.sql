-- A rate set for one loan (issue 15): a financier approving a referred application may price
-- it itself; the offer carries that annual rate and the loan drawn from it takes it instead of
-- the policy's. NULL: the policy's rate, as for every offer made before.
ALTER TABLE offers ADD COLUMN annual_rate numeric CHECK (annual_rate BETWEEN 0 AND 1);

-- Findings (README: Findings): the gaps grouped by cause (the gap code) and responsible party, every gap
-- in exactly one finding (finding_rows, from findings_groups.sql), with the eligible units of that party
-- (finding_eligible, from findings_eligible.sql): the share is the affected units (calls, sessions or
-- spans) out of them. mcptrace.analysis.findings writes each finding's sentence and remedy and ranks them.
CREATE OR REPLACE TEMP TABLE _finding_rows AS
SELECT f.*, e.n AS n_eligible,
       CASE WHEN e.n > 0 THEN least(f.n_affected / e.n, 1.0) END AS share
FROM finding_rows f LEFT JOIN finding_eligible e
  ON e.eligible = f.eligible
 AND e.party = coalesce(f.tool_party, f.party)
 AND e.party_kind IS NOT DISTINCT FROM CASE WHEN f.eligible = 'service_spans' THEN NULL
                                            WHEN f.tool_party IS NOT NULL THEN 'tool' ELSE f.party_kind END;

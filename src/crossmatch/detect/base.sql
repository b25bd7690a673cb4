-- Building blocks shared by the rules (TEMP tables, materialised once per run by the engine).
-- Rules read these instead of repeating the definitions, so "a payment", "a household" and
-- "a paid month" mean the same thing in every rule.

-- Account numbers compared across exports. Ingestion's `code` normaliser already applies NFKC
-- (full-width digits), drops spaces and upper-cases; dashes and dots used as group separators
-- remain and are dropped here (plain replace: a regex over every payment costs seconds at scale).
CREATE OR REPLACE TEMP MACRO norm_account(a) AS
    nullif(replace(replace(replace(upper(CAST(a AS VARCHAR)), '-', ''), ' ', ''), '.', ''), '');

-- A payment counts only if it was actually made: failed transfers are not payments, and an exact
-- duplicate row of an export (_dup_of set by ingestion) is the same payment, not a second one.
CREATE OR REPLACE TEMP TABLE paid AS
WITH p AS (
    SELECT *, CAST(try_strptime(period || '-01', '%Y-%m-%d') AS DATE) AS month_start
    FROM r_payment
    WHERE status IN ('success', '成功') AND _dup_of IS NULL AND amount IS NOT NULL
)
SELECT *, CAST(month_start + INTERVAL 1 MONTH - INTERVAL 1 DAY AS DATE) AS month_end,
       norm_account(account) AS acct
FROM p WHERE month_start IS NOT NULL;

-- One row per assistance case (低保/特困 certificate).
CREATE OR REPLACE TEMP TABLE dibao_case AS
SELECT case_no,
       any_value(assistance_type) AS assistance_type,
       any_value(applicant_pid) AS applicant_pid,
       any_value(applicant_name) AS applicant_name,
       any_value(village_code) AS village_code,
       any_value(handler_name) AS handler_name,
       any_value(approver_name) AS approver_name,
       any_value(handler_pid) AS handler_pid,
       any_value(approver_pid) AS approver_pid,
       max(household_size) AS household_size,
       min(start_date) AS start_date,
       CASE WHEN bool_or(end_date IS NULL) THEN NULL ELSE max(end_date) END AS end_date,
       any_value(_source) AS source, any_value(_file) AS file, min(_row) AS row
FROM r_assistance
WHERE _dup_of IS NULL AND case_no IS NOT NULL
GROUP BY case_no;

-- The household (共同生活家庭成员) of each case: the roster's members (and the applicant), plus the
-- applicant's household in the registry (户籍). `basis` says where a member comes from so a rule
-- can restrict itself to the roster; `left_date` is when a registry member left (death, move).
CREATE OR REPLACE TEMP TABLE dibao_member AS
SELECT * FROM (
    SELECT a.case_no, a.member_pid, a.member_name, a.relation_to_applicant AS relation,
           'roster' AS basis, a._source AS source, a._file AS file, a._row AS row,
           CAST(NULL AS DATE) AS left_date, 1 AS pref
    FROM r_assistance a
    WHERE a._dup_of IS NULL AND a.member_pid IS NOT NULL AND a.case_no IS NOT NULL
    UNION ALL
    SELECT c.case_no, c.applicant_pid, c.applicant_name, '本人', 'roster', c.source, c.file,
           c.row, CAST(NULL AS DATE), 2
    FROM dibao_case c WHERE c.applicant_pid IS NOT NULL
    UNION ALL
    SELECT c.case_no, hm.person_pid, hm.person_name, hm.relation_to_head, 'hukou', hm._source,
           hm._file, hm._row, hm.cancel_date, 3
    FROM dibao_case c
    JOIN r_hukou ha ON ha.person_pid = c.applicant_pid AND ha._dup_of IS NULL
    JOIN r_hukou hm ON hm.household_no = ha.household_no AND hm._dup_of IS NULL
    WHERE hm.person_pid IS NOT NULL
)
QUALIFY row_number() OVER (PARTITION BY case_no, member_pid ORDER BY pref, row) = 1;

-- Months in which a case was actually paid its assistance (低保金/特困供养金 items, see
-- rules/reference/assistance_items.csv), with the amount and the payment rows.
CREATE OR REPLACE TEMP TABLE dibao_paid_month AS
SELECT c.case_no,
       coalesce(c.applicant_pid, 'case:' || c.case_no) AS applicant_pid,
       any_value(c.applicant_name) AS applicant_name,
       any_value(c.village_code) AS village_code,
       p.period,
       any_value(p.month_start) AS month_start,
       any_value(p.month_end) AS month_end,
       sum(p.amount) AS amount,
       list({'source': p._source, 'file': p._file, 'row': p._row, 'role': 'payee'}) AS rows
FROM dibao_case c
JOIN (SELECT DISTINCT case_no, member_pid FROM dibao_member WHERE basis = 'roster') m
  ON m.case_no = c.case_no
JOIN paid p ON p.payee_pid = m.member_pid
WHERE p.item IN (SELECT item FROM ref_assistance_items)
GROUP BY c.case_no, c.applicant_pid, p.period;

-- Village cadres with their term as dates (open term = still serving).
CREATE OR REPLACE TEMP TABLE cadre_term AS
SELECT person_pid AS cadre_pid, person_name AS cadre_name, village_code, post,
       coalesce(term_start, DATE '1900-01-01') AS term_start,
       coalesce(term_end, DATE '9999-12-31') AS term_end,
       _source AS source, _file AS file, _row AS row
FROM r_cadre WHERE person_pid IS NOT NULL AND _dup_of IS NULL;

-- Filed proxy collection (代领代管备案): beneficiary, agent and account, normalised.
CREATE OR REPLACE TEMP TABLE proxy_filed AS
SELECT beneficiary_pid, agent_pid, norm_account(account) AS account, filed_date
FROM r_proxy_filing WHERE _dup_of IS NULL;

-- Who holds an account, and when.
CREATE OR REPLACE TEMP TABLE account_holder AS
SELECT norm_account(account) AS account, holder_pid, holder_name,
       coalesce(opened, DATE '1900-01-01') AS opened, coalesce(closed, DATE '9999-12-31') AS closed,
       _source AS source, _file AS file, _row AS row
FROM r_bank_account WHERE _dup_of IS NULL AND holder_pid IS NOT NULL AND account IS NOT NULL;

-- Close-relative scope is a property of the pair: A and B are relatives in a scope when B is in
-- A's scope or A is in B's (a cadre's father-in-law has the cadre as 子女的配偶).
CREATE OR REPLACE TEMP MACRO kin_inverse(r) AS
    CASE r WHEN 'parent' THEN 'child' WHEN 'child' THEN 'parent'
           WHEN 'child_in_law' THEN 'parent_in_law' WHEN 'parent_in_law' THEN 'child_in_law'
           WHEN 'grandparent' THEN 'grandchild' WHEN 'grandchild' THEN 'grandparent'
           ELSE r END;
CREATE OR REPLACE TEMP MACRO in_kin_scope(r, scope) AS
    list_contains(scope, r) OR list_contains(scope, kin_inverse(r));

-- How strongly a source row is tied to its person: 'id' when the row's own ID number is the
-- resolved person's, or is a damaged copy of it (18 characters, at most 2 differ: a typo or a
-- transposition); 'name' when the row has no usable ID and was linked on name and context alone.
CREATE OR REPLACE TEMP MACRO link_strength(id, id_raw, pid) AS
    CASE WHEN id IS NOT NULL AND id = pid THEN 'id'
         WHEN id IS NULL AND pid IS NOT NULL AND length(pid) = 18
              AND length(upper(regexp_replace(coalesce(id_raw, ''), '[^0-9Xx]', '', 'g'))) = 18
              AND hamming(upper(regexp_replace(id_raw, '[^0-9Xx]', '', 'g')), pid) <= 2
             THEN 'id'
         ELSE 'name' END;

-- Whether a source row may serve as evidence about its resolved person. Its own ID tying it to
-- the person (`link_strength` = 'id') always suffices; otherwise identity's posterior for the
-- link (identity_link.probability: name + village/birth/account agreement weighed against the
-- other candidates) must reach `min_p`. An unresolved or absent link (NULL) never does.
CREATE OR REPLACE TEMP MACRO link_trusted(strength, p, min_p) AS
    strength = 'id' OR coalesce(p >= min_p, false);

-- Building blocks shared by the rules (TEMP tables, materialised once per run by the engine).
-- Rules read these instead of repeating the definitions, so "a payment", "a household" and
-- "a paid month" mean the same thing in every rule.
--
-- Stated policies for what an export may lack (an optional column that a layout does not have
-- arrives as NULL; the mapping may instead give a constant or default, `value:` / `default:`):
--   * payment status NULL (no 发放状态 column): the payment was made. Only a status that says
--     otherwise (failed, returned, pending ...) removes it: made = status NULL or one of
--     success/成功/发放成功/已发放 (the payment mapping normalises its own vocabulary to these).
--   * payment item not in rules/reference/item_class.csv, or NULL: the payment counts as made
--     for the item-blind rules (deceased, ghost, duplicate, shared/cadre account) but has no
--     class: it is never a household's assistance and meets no standard. Each such item is
--     reported (base_warning) with the fix, never dropped silently.
--   * payment village_code NULL: rules that need the region take the payee's case village, then
--     the registry's (person.village_code).
--   * payment period unparseable or NULL: the row is not a payment of any month (the mapping
--     makes period required, so ingestion quarantines such rows and says so).
--   * roster household_size (保障人数) NULL: the case's covered persons are the distinct people
--     listed on its roster (applicant included).
--   * roster start_date NULL: the case is open from the beginning of time; end_date NULL on any
--     of its rows: the case is open (still running).
--   * roster assistance_type not in item_class.csv: the case has no class of its own (a broad
--     payment class such as 城乡低保 is then used as it is); reported like payment items.
--   * any interval (case, job, term, vehicle, property, enterprise) with a NULL start is open
--     from the beginning of time, with a NULL end still running; two intervals overlap when they
--     share at least one day (month-only dates arrive as the month's first / last day, see the
--     mapping's `month: start|end`).

-- Account numbers compared across exports. Ingestion's `code` normaliser already applies NFKC
-- (full-width digits), drops spaces and upper-cases; dashes and dots used as group separators
-- remain and are dropped here (plain replace: a regex over every payment costs seconds at scale).
CREATE OR REPLACE TEMP MACRO norm_account(a) AS
    nullif(replace(replace(replace(upper(CAST(a AS VARCHAR)), '-', ''), ' ', ''), '.', ''), '');

-- Deterministic "first non-NULL value" of a group (by source row), instead of any_value.
CREATE OR REPLACE TEMP MACRO first_by(x, o) AS arg_min(x, o) FILTER (WHERE x IS NOT NULL);

-- Whether a payment was made (policy above: an absent status is a made payment).
CREATE OR REPLACE TEMP MACRO payment_made(status) AS
    status IS NULL OR lower(trim(CAST(status AS VARCHAR))) IN ('success', '成功', '发放成功', '已发放');

-- Item names -> item class (rules/reference/item_class.csv): one class per name; a name listed
-- twice with different classes keeps the first class by name order and is reported.
CREATE OR REPLACE TEMP TABLE item_class_map AS
SELECT trim(item) AS item, min(trim(class)) AS class, count(DISTINCT trim(class)) AS n_classes
FROM ref_item_class
WHERE coalesce(trim(item), '') <> '' AND coalesce(trim(class), '') <> ''
GROUP BY trim(item);

-- Classes that are a household's assistance, with the broader class each falls back to.
CREATE OR REPLACE TEMP TABLE assistance_class AS
SELECT DISTINCT trim(class) AS class, nullif(trim(parent), '') AS parent
FROM ref_assistance_classes WHERE coalesce(trim(class), '') <> '';

-- A payment counts only if it was actually made: failed transfers are not payments, and an exact
-- duplicate row of an export (_dup_of set by ingestion) is the same payment, not a second one.
CREATE OR REPLACE TEMP TABLE paid AS
WITH p AS (
    SELECT r.*, m.class AS item_class,
           CAST(try_strptime(r.period || '-01', '%Y-%m-%d') AS DATE) AS month_start
    FROM r_payment r
    LEFT JOIN item_class_map m ON m.item = trim(r.item)
    WHERE payment_made(r.status) AND r._dup_of IS NULL AND r.amount IS NOT NULL
)
SELECT *, CAST(month_start + INTERVAL 1 MONTH - INTERVAL 1 DAY AS DATE) AS month_end,
       norm_account(account) AS acct
FROM p WHERE month_start IS NOT NULL;

-- One row per assistance case (低保/特困 certificate). `persons` = the number of covered persons
-- (保障人数 as declared, else the distinct people on the roster): the band of its standard.
CREATE OR REPLACE TEMP TABLE dibao_case AS
SELECT a.case_no,
       first_by(a.assistance_type, a._row) AS assistance_type,
       first_by(m.class, a._row) AS case_class,
       first_by(a.applicant_pid, a._row) AS applicant_pid,
       first_by(a.applicant_name, a._row) AS applicant_name,
       first_by(a.village_code, a._row) AS village_code,
       first_by(a.handler_name, a._row) AS handler_name,
       first_by(a.approver_name, a._row) AS approver_name,
       first_by(a.handler_pid, a._row) AS handler_pid,
       first_by(a.approver_pid, a._row) AS approver_pid,
       max(a.household_size) AS household_size,
       coalesce(max(a.household_size),
                count(DISTINCT coalesce(a.member_pid, a.member_id, a.member_name))
                + CASE WHEN first_by(a.applicant_pid, a._row) IS NULL
                         OR bool_or(a.member_pid = a.applicant_pid) THEN 0 ELSE 1 END) AS persons,
       min(a.start_date) AS start_date,
       CASE WHEN bool_or(a.end_date IS NULL) THEN NULL ELSE max(a.end_date) END AS end_date,
       first_by(a._source, a._row) AS source, first_by(a._file, a._row) AS file,
       min(a._row) AS row
FROM r_assistance a
LEFT JOIN item_class_map m ON m.item = trim(a.assistance_type)
WHERE a._dup_of IS NULL AND a.case_no IS NOT NULL
GROUP BY a.case_no;

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

-- Months in which a case was actually paid its assistance (payments whose item class is in
-- rules/reference/assistance_classes.csv), with the amount and the payment rows.
-- `win_start`..`win_end` is the part of the month inside the case interval: a rule asking
-- "during the case" tests that window (an interval overlaps it when they share a day). A month
-- paid wholly outside the case interval (paid after the case ended) keeps the whole month: a
-- payment made is a claim that the household was eligible in that month.
CREATE OR REPLACE TEMP TABLE dibao_paid_month AS
WITH pm AS (
    SELECT c.case_no,
           coalesce(c.applicant_pid, 'case:' || c.case_no) AS applicant_pid,
           min(c.applicant_name) AS applicant_name,
           min(c.village_code) AS village_code,
           min(c.start_date) AS case_start,
           min(c.end_date) AS case_end,
           p.period,
           min(p.month_start) AS month_start,
           min(p.month_end) AS month_end,
           sum(p.amount) AS amount,
           list({'source': p._source, 'file': p._file, 'row': p._row, 'role': 'payee'}
                ORDER BY p._file, p._row) AS rows
    FROM dibao_case c
    JOIN (SELECT DISTINCT case_no, member_pid FROM dibao_member WHERE basis = 'roster') m
      ON m.case_no = c.case_no
    JOIN paid p ON p.payee_pid = m.member_pid
    WHERE p.item_class IN (SELECT class FROM assistance_class)
    GROUP BY c.case_no, c.applicant_pid, p.period
)
SELECT pm.*,
       CASE WHEN w_start <= w_end THEN w_start ELSE month_start END AS win_start,
       CASE WHEN w_start <= w_end THEN w_end ELSE month_end END AS win_end
FROM (SELECT *, greatest(month_start, coalesce(case_start, month_start)) AS w_start,
             least(month_end, coalesce(case_end, month_end)) AS w_end
      FROM pm) pm;

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

-- What the building blocks could not classify, one line per problem, logged by the engine as
-- warnings (never a silent drop). No names or ID numbers: item names and counts only.
CREATE OR REPLACE TEMP TABLE base_warning AS
WITH unknown AS (
    SELECT 'r_payment' AS tbl, 'item (补贴项目)' AS col, trim(item) AS item, count(*) AS n,
           min(_file || ':' || _row) AS first_row
    FROM r_payment WHERE _dup_of IS NULL AND item IS NOT NULL
     AND trim(item) NOT IN (SELECT item FROM item_class_map)
    GROUP BY trim(item)
    UNION ALL
    SELECT 'r_subsidy_standard', 'item (补贴项目)', trim(item), count(*), min(_file || ':' || _row)
    FROM r_subsidy_standard WHERE _dup_of IS NULL AND item IS NOT NULL
     AND trim(item) NOT IN (SELECT item FROM item_class_map)
    GROUP BY trim(item)
    UNION ALL
    SELECT 'r_assistance', 'assistance_type (救助类别)', trim(assistance_type), count(*),
           min(_file || ':' || _row)
    FROM r_assistance WHERE _dup_of IS NULL AND assistance_type IS NOT NULL
     AND trim(assistance_type) NOT IN (SELECT item FROM item_class_map)
    GROUP BY trim(assistance_type)
)
SELECT 'item_class' AS topic,
       format('{}: {} row(s) (first {}) have {} ''{}'', which is not in '
              || 'rules/reference/item_class.csv, so they have no item class (never a '
              || 'household''s assistance, no standard). Fix: add a line `{},<class>,` to '
              || 'rules/reference/item_class.csv', tbl, n, first_row, col, item, item) AS message
FROM unknown
UNION ALL
SELECT 'item_class', format('r_payment: {} row(s) (first {}) have no item (补贴项目): they count '
              || 'as payments but not as assistance. Fix: map the item column, or give it with '
              || '`value:` / `from: sheet|title|path` in sources/payment.yaml', count(*),
              min(_file || ':' || _row))
FROM r_payment WHERE _dup_of IS NULL AND item IS NULL HAVING count(*) > 0
UNION ALL
SELECT 'item_class', format('rules/reference/item_class.csv: item ''{}'' is listed with {} '
              || 'different classes, class ''{}'' is used. Fix: keep one line per item',
              item, n_classes, class)
FROM item_class_map WHERE n_classes > 1
ORDER BY 1, 2;

-- pgshift-ignore: no-such-rule
SELECT 1;

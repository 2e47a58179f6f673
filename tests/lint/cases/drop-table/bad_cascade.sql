DROP TABLE IF EXISTS public.old_sessions CASCADE;

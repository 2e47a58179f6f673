CREATE POLICY documents_owner ON public.documents USING (owner_id = current_setting('app.user_id')::bigint);
ALTER TABLE documents ENABLE ROW LEVEL SECURITY;

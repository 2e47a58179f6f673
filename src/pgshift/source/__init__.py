"""Reading migration files into model values: names, headers, SQL statements and whole folders."""

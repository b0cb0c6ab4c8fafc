#!/usr/bin/env Rscript
# Example R plugin, written exactly as for the original ServiceManager (RMySQL + MYSQL_*).
library('RMySQL')

USER <- Sys.getenv("MYSQL_USER")
PASSWORD <- Sys.getenv("MYSQL_PASSWORD")
DATABASE <- Sys.getenv("MYSQL_DATABASE")
HOST <- Sys.getenv("MYSQL_HOST")
PORT <- as.integer(Sys.getenv("MYSQL_PORT"))
PLUGIN <- Sys.getenv("MECCANO_PLUGIN", "example_R:1.0")
RUN_AT <- Sys.getenv("MECCANO_LOGICAL_DATE", "manual")

db <- dbConnect(MySQL(), user = USER, password = PASSWORD, dbname = DATABASE, host = HOST, port = PORT)
groups <- dbGetQuery(db, "SELECT device_group, COUNT(*) AS devices FROM Registration GROUP BY device_group")
for (i in seq_len(nrow(groups))) {
  grp <- groups$device_group[i]
  grp_sql <- if (is.na(grp)) "NULL" else dbQuoteString(db, grp)
  invisible(dbExecute(db, paste0("INSERT INTO ExampleOutput (plugin, device_group, devices, runAt) VALUES (",
                                 dbQuoteString(db, PLUGIN), ", ", grp_sql, ", ", groups$devices[i], ", ",
                                 dbQuoteString(db, RUN_AT), ")")))
}
cat(sprintf("counted %d device groups\n", nrow(groups)))
invisible(dbDisconnect(db))
q(status = 0)

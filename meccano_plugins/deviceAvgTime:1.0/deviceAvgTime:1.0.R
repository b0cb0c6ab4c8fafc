#!/usr/bin/env Rscript
# deviceAvgTime: the average time, in seconds, between a device's contacts with the gateway
# (its Facts rows) in the window, as a bar chart (output.png) and its numbers (data.csv).
# Written like the original's R plugins: RMySQL and the MYSQL_* variables; on the embedded demo's
# SQLite IOTDB (MECCANO_IOTDB_SQLITE) it reads with RSQLite instead.
#
# Average gap = (last contact - first contact) / (contacts - 1): the mean of the gaps
# between consecutive contacts, computed without reading every row.
SQLITE <- Sys.getenv("MECCANO_IOTDB_SQLITE")  # the embedded demo's IOTDB
if (nchar(SQLITE) > 0) {
  if (!requireNamespace("RSQLite", quietly = TRUE)) {
    stop(paste("deviceAvgTime:1.0 on the embedded SQLite IOTDB needs the R package RSQLite:",
               "apt-get install r-cran-rsqlite (with MySQL/MariaDB it uses RMySQL, as the original)"), call. = FALSE)
  }
} else {
  library('RMySQL')
}

OUT <- Sys.getenv("MECCANO_REPORT_DIR", "assets")
PARAMS <- Sys.getenv("MECCANO_PARAMETERS", "{}")

int_param <- function(name, default) {
  m <- regmatches(PARAMS, regexec(paste0('"', name, '"[[:space:]]*:[[:space:]]*"?([0-9]+)'), PARAMS))[[1]]
  value <- if (length(m) == 2) as.integer(m[2]) else default
  if (is.na(value) || value < 1) stop(sprintf("deviceAvgTime:1.0: parameter %s must be a whole number of 1 or more", name))
  value
}
WINDOW_HOURS <- int_param("windowHours", 24L)
TOP_N <- int_param("topN", 25L)

logical <- Sys.getenv("MECCANO_LOGICAL_DATE", "")
end_time <- if (nchar(logical) >= 19) {
  as.POSIXct(sub("T", " ", substr(logical, 1, 19)), tz = "UTC")  # Airflow's logical date is UTC
} else {
  as.POSIXct(format(Sys.time(), tz = "UTC"), tz = "UTC")
}
start_time <- end_time - WINDOW_HOURS * 3600
fmt <- function(t) format(t, "%Y-%m-%d %H:%M:%S", tz = "UTC")
window_text <- sprintf("window %s – %s UTC", format(start_time, "%Y-%m-%d %H:%M", tz = "UTC"),
                       format(end_time, "%Y-%m-%d %H:%M", tz = "UTC"))

if (nchar(SQLITE) > 0) {
  db <- DBI::dbConnect(RSQLite::SQLite(), SQLITE)
  span <- "(julianday(MAX(creationDate)) - julianday(MIN(creationDate))) * 86400"  # stored as UTC text
} else {
  db <- dbConnect(MySQL(), user = Sys.getenv("MYSQL_USER"), password = Sys.getenv("MYSQL_PASSWORD"),
                  dbname = Sys.getenv("MYSQL_DATABASE"), host = Sys.getenv("MYSQL_HOST"),
                  port = as.integer(Sys.getenv("MYSQL_PORT", "3306")))
  invisible(dbExecute(db, "SET time_zone = '+00:00'"))
  span <- "TIMESTAMPDIFF(SECOND, MIN(creationDate), MAX(creationDate))"
}
sql <- paste0(
  "SELECT device, COUNT(*) AS contacts, ", span, " AS span_seconds ",
  "FROM Facts WHERE creationDate >= ", DBI::dbQuoteString(db, fmt(start_time)),
  " AND creationDate < ", DBI::dbQuoteString(db, fmt(end_time)), " GROUP BY device")
rows <- DBI::dbGetQuery(db, sql)
invisible(DBI::dbDisconnect(db))

rows$avg_seconds <- ifelse(rows$contacts > 1, rows$span_seconds / pmax(rows$contacts - 1, 1), NA)
rows <- rows[order(-ifelse(is.na(rows$avg_seconds), -1, rows$avg_seconds), rows$device), ]
dir.create(OUT, showWarnings = FALSE, recursive = TRUE)
write.csv(data.frame(device = rows$device, contacts = rows$contacts,
                     avg_seconds = round(rows$avg_seconds, 3)),
          file.path(OUT, "data.csv"), row.names = FALSE, na = "")

TITLE <- "Average time between contacts per device"
chart <- rows[!is.na(rows$avg_seconds), ]
if (nrow(chart) == 0) {
  png(file.path(OUT, "output.png"), width = 1000, height = 300)
  par(mar = c(1, 1, 4, 1))
  plot.new()
  title(main = TITLE, cex.main = 1.4)
  text(0.5, 0.5, paste0("No data in the window\n", window_text,
                        "\n(a device needs two contacts to have a time between them)"), cex = 1.3, col = "#555555")
  invisible(dev.off())
  cat(sprintf("no device with two contacts in the %d h window\n", WINDOW_HOURS))
  q(status = 0)
}

labels <- chart$device
values <- chart$avg_seconds
colors <- rep("#2f6f9f", length(values))
if (nrow(chart) > TOP_N) {
  rest <- values[(TOP_N + 1):length(values)]
  labels <- c(labels[1:TOP_N], sprintf("others (%d devices, mean)", length(rest)))
  values <- c(values[1:TOP_N], mean(rest))
  colors <- c(colors[1:TOP_N], "#a0a0a0")
}
n <- length(values)
png(file.path(OUT, "output.png"), width = 1000, height = max(300, 140 + 24 * n))
par(mar = c(5, 13, 5, 2))
pos <- barplot(rev(values), names.arg = rev(labels), horiz = TRUE, las = 1, col = rev(colors), border = NA,
               xlim = c(0, max(values) * 1.18), cex.names = 0.8,
               xlab = "average time between contacts (seconds)")
text(rev(values), pos, labels = format(round(rev(values), 1), big.mark = ","), pos = 4, cex = 0.75)
title(main = TITLE, line = 3, cex.main = 1.4)
mtext(sprintf("%s · %d devices (slowest on top)", window_text, nrow(chart)), side = 3, line = 1.2, cex = 0.85,
      col = "#555555")
invisible(dev.off())
cat(sprintf("charted %d devices\n", nrow(chart)))
q(status = 0)

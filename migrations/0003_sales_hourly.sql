-- Net sales per album, currency and hour of `purchased_at`, kept in the purchase's and the
-- refund's own transaction: the chart reads these (hours × albums), never the purchases.
CREATE TABLE sales_hourly (
    album TEXT NOT NULL,
    currency TEXT NOT NULL,
    -- Start of the hour, Unix seconds.
    hour BIGINT NOT NULL,
    -- Purchases dated in the hour and not refunded, and the sum of their prices.
    units BIGINT NOT NULL,
    revenue BIGINT NOT NULL,
    PRIMARY KEY (album, currency, hour)
);

CREATE INDEX sales_hourly_by_hour ON sales_hourly (hour);

INSERT INTO sales_hourly (album, currency, hour, units, revenue)
SELECT album, currency, purchased_at - (purchased_at % 3600), COUNT(*), CAST(SUM(price) AS BIGINT)
FROM purchases
WHERE refunded_at IS NULL
GROUP BY album, currency, purchased_at - (purchased_at % 3600);

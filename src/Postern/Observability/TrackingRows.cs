using System.Data.Common;
using System.Globalization;

namespace Postern.Observability;

/// <summary>
/// The rows both tracking stores keep (SQLite on one machine, PostgreSQL in a cluster): the
/// same columns under the same names, so the mapping between rows and the model is written
/// once. Column lists read a message under the alias "m".
/// </summary>
internal static class TrackingRows
{
    /// <summary>A message's summary columns, in the order <see cref="MessageRow.Read"/> reads them.</summary>
    public const string SummaryColumns =
        "m.mid, m.received, m.updated, m.status, m.tls, m.origin, m.sender, m.subject, m.size, m.message_id, m.client_address, m.listener, m.icid, m.bounce_of";

    /// <summary>The inbound facts that are not in the summary, read after it by <see cref="Inbound"/>.</summary>
    public const string InboundColumns =
        "m.reverse_dns, m.reverse_verified, m.sender_group, m.policy, m.policy_action, m.group_match, m.inbound_tls, m.inbound_cipher";

    /// <summary>A recipient's columns, in the order <see cref="ReadRecipients"/> reads them (mid first).</summary>
    public const string RecipientColumns = "mid, rid, address, status, tls, response, dcid, updated";

    /// <summary>A step's columns, in the order <see cref="Step"/> reads them.</summary>
    public const string StepColumns = "time, kind, dcid, rid, data";

    public static string? NullableString(DbDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);
    public static long? NullableLong(DbDataReader r, int i) => r.IsDBNull(i) ? null : r.GetInt64(i);

    /// <summary>Reads recipients (selected with <see cref="RecipientColumns"/>, ordered by mid and rid) into lists per message.</summary>
    public static void ReadRecipients(DbDataReader r, Dictionary<long, List<TrackedRecipient>> into)
    {
        while (r.Read())
        {
            var mid = r.GetInt64(0);
            if (!into.TryGetValue(mid, out var list)) into[mid] = list = [];
            list.Add(new TrackedRecipient(r.GetInt32(1), r.GetString(2), r.GetString(3), r.GetString(4), NullableString(r, 5), NullableLong(r, 6),
                TrackingTime.FromStored(r.GetInt64(7))));
        }
    }

    /// <summary>A step; its fields are stored as a JSON object.</summary>
    public static TrackingStep Step(DbDataReader r)
    {
        var fields = System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, string>>(r.GetString(4)) ?? [];
        return new TrackingStep(TrackingTime.FromStored(r.GetInt64(0)), r.GetString(1), NullableLong(r, 2), r.IsDBNull(3) ? null : r.GetInt32(3), fields);
    }

    /// <summary>The inbound facts of a message read with <see cref="SummaryColumns"/> then <see cref="InboundColumns"/>.</summary>
    public static Dictionary<string, string> Inbound(DbDataReader r, MessageRow row)
    {
        var inbound = new Dictionary<string, string>();
        void Put(string name, string? value) { if (value is not null) inbound[name] = value; }
        Put(InboundField.Icid, row.Icid?.ToString(CultureInfo.InvariantCulture));
        Put(InboundField.Client, row.Client);
        Put(InboundField.Listener, row.Listener);
        Put(InboundField.ReverseDns, NullableString(r, 14));
        Put(InboundField.ReverseVerified, r.IsDBNull(15) ? null : r.GetBoolean(15) ? "yes" : "no");
        Put(InboundField.SenderGroup, NullableString(r, 16));
        Put(InboundField.Policy, NullableString(r, 17));
        Put(InboundField.Action, NullableString(r, 18));
        Put(InboundField.Match, NullableString(r, 19));
        Put(InboundField.Tls, NullableString(r, 20));
        Put(InboundField.TlsCipher, NullableString(r, 21));
        return inbound;
    }
}

/// <summary>A message's summary columns as read.</summary>
internal sealed record MessageRow(long Mid, DateTimeOffset Received, DateTimeOffset Updated, string Status, string Tls, string Origin, string Sender,
    string? Subject, long? Size, string? MessageId, string? Client, string? Listener, long? Icid, long? BounceOf)
{
    public static MessageRow Read(DbDataReader r) => new(r.GetInt64(0), TrackingTime.FromStored(r.GetInt64(1)), TrackingTime.FromStored(r.GetInt64(2)),
        r.GetString(3), r.GetString(4), r.GetString(5), r.GetString(6), TrackingRows.NullableString(r, 7), TrackingRows.NullableLong(r, 8),
        TrackingRows.NullableString(r, 9), TrackingRows.NullableString(r, 10), TrackingRows.NullableString(r, 11), TrackingRows.NullableLong(r, 12),
        TrackingRows.NullableLong(r, 13));

    /// <summary>The summary with the first <paramref name="listed"/> recipients (the count says how many there are).</summary>
    public TrackedMessageSummary Summary(IReadOnlyList<TrackedRecipient> recipients, int listed) =>
        new(Mid, Received, Updated, Status, Tls, Origin, Sender, Subject, Size, MessageId, Client, Listener, Icid, BounceOf,
            recipients.Count <= listed ? recipients : recipients.Take(listed).ToList(), recipients.Count);
}

/// <summary>A message's inbound facts as the columns store them (from <see cref="MessageEntered.Inbound"/>).</summary>
internal sealed record InboundRow(long? Icid, string? Client, string? ReverseDns, bool? ReverseVerified, string? Listener, string? SenderGroup,
    string? Policy, string? Action, string? Match, string? Tls, string? TlsCipher)
{
    public static InboundRow From(IReadOnlyDictionary<string, string> inbound)
    {
        string? In(string name) => inbound.TryGetValue(name, out var v) ? v : null;
        return new(long.TryParse(In(InboundField.Icid), CultureInfo.InvariantCulture, out var icid) ? icid : null, In(InboundField.Client),
            In(InboundField.ReverseDns), In(InboundField.ReverseVerified) is { } v ? v == "yes" : null, In(InboundField.Listener),
            In(InboundField.SenderGroup), In(InboundField.Policy), In(InboundField.Action), In(InboundField.Match), In(InboundField.Tls), In(InboundField.TlsCipher));
    }
}

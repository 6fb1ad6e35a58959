using Postern.Policy;
using Xunit;

namespace Postern.Tests;

/// <summary>MTA-STS (RFC 8461): the TXT record, the policy grammar and MX pattern matching.</summary>
public sealed class MtaStsTests
{
    [Theory]
    [InlineData("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 86400\r\n", StsMode.Enforce)]
    [InlineData("version: STSv1\nmode: testing\nmx: mail.example.com\nmax_age: 86400", StsMode.Testing)]
    [InlineData("version:STSv1\nmode:none\nmax_age:0\n", StsMode.None)]
    [InlineData("  version :\tSTSv1  \nmode: enforce\nmx: *.example.com\nmax_age: 31557600\n", StsMode.Enforce)]
    [InlineData("mode: enforce\nmx: a.example.com\nmx: b.example.com\nmax_age: 604800\nversion: STSv1\nx_extension: anything goes\n", StsMode.Enforce)]
    public void Valid_policies_parse(string text, StsMode mode)
    {
        var (policy, error) = StsPolicy.Parse(text);
        Assert.True(error is null, error);
        Assert.Equal(mode, policy!.Mode);
    }

    [Theory]
    [InlineData("mode: enforce\nmx: a.example.com\nmax_age: 1\n", "no version field")]
    [InlineData("version: STSv2\nmode: enforce\nmx: a.example.com\nmax_age: 1\n", "version 'STSv2' is not STSv1")]
    [InlineData("version: STSv1\nmx: a.example.com\nmax_age: 1\n", "no mode field")]
    [InlineData("version: STSv1\nmode: strict\nmx: a.example.com\nmax_age: 1\n", "mode 'strict' is not enforce, testing or none")]
    [InlineData("version: STSv1\nmode: enforce\nmx: a.example.com\n", "no max_age field")]
    [InlineData("version: STSv1\nmode: enforce\nmx: a.example.com\nmax_age: 31557601\n", "max_age '31557601' is not a number of seconds up to 31557600")]
    [InlineData("version: STSv1\nmode: enforce\nmx: a.example.com\nmax_age: -5\n", "max_age '-5' is not a number of seconds up to 31557600")]
    [InlineData("version: STSv1\nmode: enforce\nmax_age: 100\n", "mode enforce needs at least one mx field")]
    [InlineData("version: STSv1\nmode: testing\nmax_age: 100\n", "mode testing needs at least one mx field")]
    [InlineData("version: STSv1\nmode: enforce\nmx: a.*.example.com\nmax_age: 100\n", "mx 'a.*.example.com' is not a host name or *.host name pattern")]
    [InlineData("version: STSv1\nmode: enforce\nmx: *example.com\nmax_age: 100\n", "mx '*example.com' is not a host name or *.host name pattern")]
    [InlineData("version: STSv1\nmode: enforce\nmx: *.com\nmax_age: 100\n", "mx '*.com' is not a host name or *.host name pattern")]
    [InlineData("version: STSv1\nthis line has no colon\n", "line 2 is not 'key: value'")]
    [InlineData("<html>version: STSv1</html>", "line 1: '<html>version' is not a field name")]
    public void Invalid_policies_are_rejected_with_the_reason(string text, string reason) =>
        Assert.Equal(reason, StsPolicy.Parse(text).Error);

    [Theory]
    [InlineData("*.mx.example", "a.mx.example", true)]
    [InlineData("*.mx.example", "A.MX.Example.", true)]
    [InlineData("*.mx.example", "a.b.mx.example", false)]
    [InlineData("*.mx.example", "mx.example", false)]
    [InlineData("*.mx.example", "amx.example", false)]
    [InlineData("mail.example.com", "mail.example.com", true)]
    [InlineData("mail.example.com", "MAIL.example.com.", true)]
    [InlineData("mail.example.com", "x.mail.example.com", false)]
    public void MX_patterns_match_one_label_wildcards_only(string pattern, string host, bool matches) =>
        Assert.Equal(matches, StsPolicy.MatchesPattern(pattern, host));

    [Theory]
    [InlineData(new[] { "v=STSv1; id=20160831085700Z;" }, "20160831085700Z", null)]
    [InlineData(new[] { "v=STSv1;id=abc" }, "abc", null)]
    [InlineData(new[] { "v=spf1 -all", "v=STSv1; id=x1; ext=1;" }, "x1", null)]
    [InlineData(new[] { "v=STSv1; id=a1;", "v=STSv1; id=a2;" }, null, "2 TXT records start with v=STSv1 (exactly one is allowed)")]
    [InlineData(new[] { "v=STSv1;" }, null, "no id field")]
    [InlineData(new[] { "v=STSv1; id=;" }, null, "id '' is not 1-32 letters and digits")]
    [InlineData(new[] { "v=STSv1; id=abc-def;" }, null, "id 'abc-def' is not 1-32 letters and digits")]
    [InlineData(new[] { "v=STSv1; id=123456789012345678901234567890123;" }, null, "id '123456789012345678901234567890123' is not 1-32 letters and digits")]
    [InlineData(new[] { "v=STSv10; id=1;" }, null, "the record does not begin with the field v=STSv1")]
    [InlineData(new string[0], null, "no TXT record starting v=STSv1")]
    public void TXT_records_give_an_id_or_the_reason_there_is_none(string[] records, string? id, string? error)
    {
        var result = StsTxt.Parse(records);
        Assert.Equal(id, result.Id);
        Assert.Equal(error, result.Error);
    }
}

using Microsoft.AspNetCore.Mvc.RazorPages;
using Postern.Cluster;

namespace Postern.Web.Pages.Members;

/// <summary>Monitor &gt; Cluster: the members of the cluster this machine belongs to, as `postern cluster status` shows them.</summary>
public sealed class ClusterModel(WebContext web) : PageModel
{
    public bool InCluster => web.Startup.Cluster is not null;
    public string ThisMember => Stores.MemberName(web.Startup);
    public string Store { get; private set; } = "";
    public int LatestVersion { get; private set; }
    public IReadOnlyList<MemberStatus> Members { get; private set; } = [];
    public long Delivered => Math.Max(1, Members.Sum(m => m.Delivered));
    public string? Problem { get; private set; }

    public void OnGet()
    {
        if (web.Startup.Cluster is not { } settings) return;
        try
        {
            var db = PostgresDatabase.For(settings);
            Store = db.Display;
            Members = ClusterMembership.Members(db, TimeSpan.FromSeconds(settings.LeaseSeconds));
            using var versions = Stores.Config(web.Startup);
            LatestVersion = versions.LatestNumber();
        }
        catch (Exception e) when (e is Admin.ConfigException or Npgsql.NpgsqlException or TimeoutException)
        {
            Problem = e.Message;
        }
    }
}

using Microsoft.AspNetCore.Mvc.RazorPages;
using Postern.Observability;

namespace Postern.Web.Pages.Tracking;

/// <summary>One message's life as a story (the same as `postern track show MID`).</summary>
public sealed class TrackedMessageModel(WebContext web) : PageModel
{
    public long Mid { get; private set; }
    public TrackedStory? Story { get; private set; }

    public void OnGet(long mid)
    {
        Mid = mid;
        using var store = Cluster.TrackingStores.OpenForReading(web.Startup, web.DataDirectory);
        Story = store?.Story(mid);
    }
}

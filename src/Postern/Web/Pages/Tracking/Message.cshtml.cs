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
        var path = SqliteTrackingStore.PathFor(web.DataDirectory);
        if (!System.IO.File.Exists(path)) return;
        using var store = SqliteTrackingStore.OpenForReading(path);
        Story = ((ITrackingStore)store).Story(mid);
    }
}

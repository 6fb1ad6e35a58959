using Postern.Fuzz;
using Xunit;

namespace Postern.Tests;

/// <summary>
/// The short, deterministic version of the fuzz run (fuzz/Postern.Fuzz does a million inputs
/// a target): the same targets and properties, fixed seeds, a few thousand inputs each.
/// </summary>
public sealed class FuzzTests
{
    public static TheoryData<string> Targets() => new(FuzzTargets.Names);

    [Theory]
    [MemberData(nameof(Targets))]
    public void Target_keeps_its_properties(string target)
    {
        foreach (var seed in new[] { 1, 2, 3 })
        {
            var fuzz = new FuzzTargets(seed);
            for (var i = 0; i < 10_000; i++) fuzz.Run(target);
        }
    }
}

// postern-fuzz: the long run of the parser fuzz targets (fuzz/FuzzTargets.cs).
//   dotnet run -c Release --project fuzz/Postern.Fuzz -- [inputs per target = 1000000] [seed = 1] [target ...]
// Prints one line per target: inputs, seconds, failures; the first failing input of each
// target in full (it becomes a regression test). Exit 1 when anything failed.
using System.Diagnostics;
using System.Globalization;
using Postern.Fuzz;

var inputs = args.Length > 0 ? long.Parse(args[0], CultureInfo.InvariantCulture) : 1_000_000;
var seed = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 1;
var targets = args.Length > 2 ? args[2..] : FuzzTargets.Names;
var failedTargets = 0;
foreach (var target in targets)
{
    var fuzz = new FuzzTargets(seed);
    var failures = 0;
    string? first = null;
    var clock = Stopwatch.StartNew();
    for (long i = 0; i < inputs; i++)
    {
        try { fuzz.Run(target); }
        catch (FuzzFailure f)
        {
            failures++;
            first ??= f.Message + (f.InnerException is { } e ? $"\n  {e.GetType().Name}: {e.Message}" : "");
        }
    }
    clock.Stop();
    Console.WriteLine($"{{\"target\":\"{target}\",\"inputs\":{inputs},\"seed\":{seed},\"seconds\":{clock.Elapsed.TotalSeconds:F1},\"accepted\":{fuzz.Accepted},\"failures\":{failures}}}");
    if (first is not null) { Console.WriteLine(first); failedTargets++; }
}
return failedTargets == 0 ? 0 : 1;

# Perl under strict mode: threads, fork and pipes, a temporary file, a
# regex-heavy sort with a comparison sub, $0, and a subprocess. Prints
# "perl ok <n> comparisons" or dies.
use strict;
use warnings;
use threads;
use File::Temp qw(tempfile);

my $n = 0;
my @sorted = sort { $n++; $a <=> $b } map { ($_ * 7919) % 10007 } 1 .. 5000;
for my $i (1 .. $#sorted) { die "sort" if $sorted[$i - 1] > $sorted[$i] }

my @t = map { my $k = $_; threads->create(sub { my $s = 0; $s += $_ for 1 .. 1000 * $k; $s }) } 1 .. 4;
my @sums = map { $_->join } @t;
die "threads: @sums" unless "@sums" eq "500500 2001000 4501500 8002000";

pipe(my $rd, my $wr) or die "pipe: $!";
my $pid = fork() // die "fork: $!";
if ($pid == 0) { close $rd; print $wr "child"; exit 7 }
close $wr;
my $msg = <$rd>;
waitpid($pid, 0);
die "fork: $msg $?" unless $msg eq "child" && ($? >> 8) == 7;

my ($fh, $name) = tempfile(UNLINK => 1);
print $fh "x" x 100;
close $fh;
die "tempfile" unless -s $name == 100;

$0 = "perl-under-strict";
my $out = `echo hi`;
die "subprocess: $out" unless $out eq "hi\n";
my $text = join ",", map { sprintf "%03d", $_ } grep { /7/ } 1 .. 100;
die "regex" unless $text =~ /^007,017,027/;
print "perl ok $n comparisons\n";

/// The dashboard served at `GET /`, generated from Dashboard/dashboard.html.
enum DashboardPage {
    static let html = #"""
<!doctype html><title>ImageQueue</title><p>The dashboard is being built.</p>
"""#
}

from django import forms


class FindOrderForm(forms.Form):
    number = forms.CharField(
        max_length=16, required=False, label="Order number",
        help_text="As in your confirmation, e.g. RK-ABCD-2345. Leave it empty to have the links to your recent "
                  "orders e-mailed to you.")
    email = forms.EmailField(label="E-mail used at checkout")
